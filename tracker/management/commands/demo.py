import time

from django.core.management.base import BaseCommand

from tracker.demo import load_demo


class Command(BaseCommand):
    help = "Load the seed documents' workload (fixed random seed). Running it again adds nothing."

    def handle(self, *args, **options):
        created = load_demo(start_ms=int(time.time() * 1000) - 3_600_000)
        if created:
            self.stdout.write(self.style.SUCCESS(f"Loaded demo experiments: {', '.join(created)}"))
        else:
            self.stdout.write("Demo experiments already loaded; nothing to do.")
