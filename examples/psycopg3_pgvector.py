"""psycopg 3 with pgvector-python: numpy arrays in and out, the database embedding the rows."""
import os

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
    register_vector(conn)
    conn.execute("INSERT INTO text_embeddings (text) VALUES (%s), (%s)",
                 ("compress files with gzip", "a game about ancient wars"))      # embedded by the database
    text, vector = conn.execute("SELECT text, embedding FROM text_embeddings "
                                "WHERE text = 'a game about ancient wars'").fetchone()
    query = conn.execute("SELECT embed(%s)", ("strategy games",)).fetchone()[0].to_numpy()   # numpy
    assert isinstance(vector.to_numpy(), np.ndarray) and isinstance(query, np.ndarray)
    nearest = conn.execute("SELECT text FROM text_embeddings ORDER BY embedding <=> %s LIMIT 1", (query,)).fetchone()
    found = conn.execute("SELECT text FROM search(%s, 1)", ("strategy games",)).fetchone()
    print(nearest[0], "|", found[0])
