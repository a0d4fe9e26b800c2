from django.db import migrations


def create_default_experiment(apps, schema_editor):
    Experiment = apps.get_model("tracker", "Experiment")
    # MLflow clients expect experiment 0 named "Default" to exist.
    Experiment.objects.get_or_create(
        pk=0,
        defaults={
            "name": "Default",
            "artifact_location": "mlflow-artifacts:/0",
            "lifecycle_stage": "active",
            "creation_time": 0,
            "last_update_time": 0,
        },
    )


class Migration(migrations.Migration):
    dependencies = [("tracker", "0001_initial")]
    operations = [migrations.RunPython(create_default_experiment, migrations.RunPython.noop)]
