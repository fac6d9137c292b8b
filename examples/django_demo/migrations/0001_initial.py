import os

from django.db import migrations, models
from pgvector.django import VectorExtension, VectorField


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [
        VectorExtension(),
        migrations.CreateModel(
            name="Doc",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("body", models.TextField()),
                ("body_embedding", VectorField(dimensions=int(os.environ.get("PGBERT_DIMENSION", "768")),
                                               null=True, editable=False)),
            ],
            options={"db_table": "django_docs"},
        ),
        # rows embed themselves from now on (and the HNSW index is built)
        migrations.RunSQL("CALL pgbert.enable_embedding('django_docs', 'body')",
                          "CALL pgbert.disable_embedding('django_docs')"),
    ]
