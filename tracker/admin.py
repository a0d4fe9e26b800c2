from django.contrib import admin

from tracker.models import Experiment, ExperimentTag, Param, Run, RunTag


class ExperimentTagInline(admin.TabularInline):
    model = ExperimentTag
    extra = 0


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "lifecycle_stage", "creation_time"]
    list_filter = ["lifecycle_stage"]
    search_fields = ["name"]
    inlines = [ExperimentTagInline]


class ParamInline(admin.TabularInline):
    model = Param
    extra = 0


class RunTagInline(admin.TabularInline):
    model = RunTag
    extra = 0


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ["run_id", "name", "experiment", "status", "depth", "lifecycle_stage", "start_time"]
    list_filter = ["status", "lifecycle_stage"]
    search_fields = ["name", "run_id"]
    list_select_related = ["experiment"]
    # Hierarchy fields are kept by tracker/services/; editing them here would break the paths.
    readonly_fields = ["run_id", "parent", "parent_run_id", "depth", "path"]
    raw_id_fields = ["experiment"]
    inlines = [ParamInline, RunTagInline]
