"""The original tutorial's flow: embed in the client, insert with psycopg2, search with ORDER BY <->.

It runs as written but for one cast, `%s::vector`: psycopg2 sends a Python list as numeric[], and pgvector
turns an array into a vector only when asked (its casts from arrays are not implicit, on purpose: pgvector's
own behaviour stays what it is). With pgbert the client-side model is optional: rows without a vector are
embedded by the database (see psycopg3_pgvector.py).
"""
import os

import numpy as np
import psycopg2

from pgbert_runtime import get_encoder

encoder = get_encoder(os.environ["PGBERT_BUNDLE"])  # stands in for the tutorial's own model in the client


def get_embedding(text: str) -> np.ndarray:
    return encoder.encode([text])[0]


conn = psycopg2.connect(os.environ["DATABASE_URL"])
cur = conn.cursor()
for text in ["I love natural language processing", "PostgreSQL is a database", "The weather is nice today"]:
    vector = get_embedding(text)
    cur.execute("INSERT INTO text_embeddings (text, embedding) VALUES (%s, %s)", (text, vector.tolist()))
conn.commit()

query = get_embedding("natural language processing")
cur.execute("SELECT text, embedding FROM text_embeddings ORDER BY embedding <-> %s::vector LIMIT %s",
            (query.tolist(), 5))
for text, _ in cur.fetchall():
    print(text)
conn.close()
