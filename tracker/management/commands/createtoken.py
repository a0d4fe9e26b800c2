from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from tracker.web.auth import token_issue, token_revoke


class Command(BaseCommand):
    help = "Make an API token for a user (shown once), or revoke one by the first characters it was shown with."

    def add_arguments(self, parser):
        parser.add_argument("name", help="the user's name")
        parser.add_argument("--revoke", metavar="TOKEN_PREFIX", help="revoke the user's token that starts with this")

    def handle(self, *args, name, revoke, **options):
        user_model = get_user_model()
        user = user_model._default_manager.filter(**{user_model.USERNAME_FIELD: name}).first()
        if user is None:
            raise CommandError(f"No user '{name}'; create one with `manage.py createuser {name} --role viewer|writer`.")
        if revoke is not None:
            if len(revoke) < 8:
                raise CommandError("Give at least the token's first 8 characters.")
            if not token_revoke(user=user, prefix=revoke):
                raise CommandError(f"'{name}' has no active token starting with {revoke[:8]!r}.")
            self.stdout.write(self.style.SUCCESS(f"Revoked {name}'s token {revoke[:8]}…"))
            return
        raw_token = token_issue(user=user)
        # The token alone on stdout, so a script can capture it; the advice goes to stderr.
        self.stdout.write(raw_token)
        self.stderr.write(
            f"This is the only time the token is shown. Use it as MLFLOW_TRACKING_TOKEN; "
            f"revoke it with `manage.py createtoken {name} --revoke {raw_token[:8]}`."
        )
