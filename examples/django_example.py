"""Django with pgvector.django: a model, a migration that turns auto-embedding on, inserts, an ordering query."""
import os
from urllib.parse import parse_qs, urlparse

import django
from django.conf import settings

url = urlparse(os.environ["DATABASE_URL"])
query = parse_qs(url.query)
settings.configure(
    INSTALLED_APPS=["django_demo"],
    DATABASES={"default": {"ENGINE": "django.db.backends.postgresql", "NAME": url.path.lstrip("/"),
                           "USER": url.username, "HOST": query.get("host", [url.hostname])[0],
                           "PORT": query.get("port", [url.port])[0]}},
    DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
)
django.setup()

from django.core.management import call_command  # noqa: E402
from django.db.models import Func, Value  # noqa: E402
from pgvector.django import CosineDistance  # noqa: E402

from django_demo.models import Doc  # noqa: E402

call_command("migrate", "django_demo", verbosity=0)
Doc.objects.bulk_create([Doc(body="compress files with gzip"), Doc(body="a game about ancient wars")])
doc = Doc.objects.get(body__startswith="a game")
assert doc.body_embedding is not None  # filled by the database on INSERT
note = Doc.objects.create(body="notes on terminal emulators")  # the instance keeps body_embedding = None ...
note.save()  # ... and save() writes it back: the database embeds the row again instead of storing NULL
nearest_to_note = "SELECT * FROM django_docs WHERE id = (SELECT id::bigint FROM search(%s, 1, 'django_docs'))"
found = Doc.objects.raw(nearest_to_note, [note.body])
assert [d.pk for d in found] == [note.pk] and Doc.objects.get(pk=note.pk).body_embedding is not None
nearest = Doc.objects.filter(pk__lt=note.pk).order_by(
    CosineDistance("body_embedding", Func(Value("strategy games"), function="embed")))
print(nearest.first().body)
