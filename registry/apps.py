from django.apps import AppConfig


class RegistryConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "registry"
    verbose_name = "Model registry"

    def import_from_mlflow(self, location: str) -> str:
        """`import_mlflow`'s hook: the source's registry, after its runs; returns a summary line."""
        from registry.importing import registry_import_from  # models load after the app registry

        return registry_import_from(location).summary()
