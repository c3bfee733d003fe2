"""Agent and peripheral inventory of each device (model, firmware version)."""

from tortoise import migrations


class Migration(migrations.Migration):
    dependencies = [("models", "0003_auth")]  # noqa: RUF012 - tortoise reads it so

    initial = False

    operations = []  # noqa: RUF012 - tortoise's Migration declares its operations so
