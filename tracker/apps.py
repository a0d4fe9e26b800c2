from django.apps import AppConfig


class TrackerConfig(AppConfig):
    name = "tracker"
    verbose_name = "Tracking"

    def ready(self):
        # Not at the top: system checks register when their module is imported, and Django wants
        # that done once the app registry is ready (its documented place is ready()).
        from tracker import checks  # noqa: F401
