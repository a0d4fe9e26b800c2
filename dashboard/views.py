from django.shortcuts import render

from tracker.models import Experiment


def experiment_list(request):
    experiments = Experiment.objects.active().order_by("name")
    return render(request, "dashboard/experiment_list.html", {"experiments": experiments})
