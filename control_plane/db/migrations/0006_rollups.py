"""Hourly roll-ups of handled cases and records, for statistics kept longer than raw records."""

from tortoise import migrations


class Migration(migrations.Migration):
    dependencies = [("models", "0005_staff")]  # noqa: RUF012 - tortoise reads it so

    initial = False

    operations = []  # noqa: RUF012 - tortoise's Migration declares its operations so
