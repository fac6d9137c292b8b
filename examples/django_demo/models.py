from django.db import models
from pgvector.django import VectorField


class Doc(models.Model):
    body = models.TextField()
    body_embedding = VectorField(null=True, editable=False)  # filled by pgbert's triggers

    class Meta:
        db_table = "django_docs"
