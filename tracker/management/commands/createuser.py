import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from tracker.web.auth import ROLE_GROUPS, user_set_role


class Command(BaseCommand):
    help = (
        "Create a user who may read (viewer) or read and log (writer) when RUNTREE_AUTH=required, "
        "or change an existing user's role and password."
    )

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--role", required=True, choices=sorted(ROLE_GROUPS))
        parser.add_argument(
            "--password-from-env",
            metavar="VAR",
            help="Set the password from this environment variable (never from the command line, "
            "which other users of the machine can read). Without it the user logs in with tokens only.",
        )

    def handle(self, *args, name, role, password_from_env, **options):
        password = None
        if password_from_env:
            password = os.environ.get(password_from_env)
            if not password:
                raise CommandError(f"The environment variable {password_from_env} is unset or empty.")
        user_model = get_user_model()
        with transaction.atomic():
            user, created = user_model._default_manager.get_or_create(**{user_model.USERNAME_FIELD: name})
            if password is not None:
                user.set_password(password)
            elif created:
                user.set_unusable_password()
            user.save()
            user_set_role(user=user, role=role)
        verb = "Created" if created else "Updated"
        self.stdout.write(self.style.SUCCESS(f"{verb} {role} '{name}'."))
