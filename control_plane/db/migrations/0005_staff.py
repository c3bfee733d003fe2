"""Staff (工作人员) of departments, for binding review pads and reviews."""

from tortoise import migrations


class Migration(migrations.Migration):
    dependencies = [("models", "0004_device_inventory")]  # noqa: RUF012 - tortoise reads it so

    initial = False

    operations = []  # noqa: RUF012 - tortoise's Migration declares its operations so
