"""Conversion of vectors (numpy rows, or array('f') from the model host) to pgvector's text form.

Returning the '[x,y,...]' text from PL/Python was measured faster than returning a Python list
or a float4[] cast (0.45 s against 0.76 s and 0.91 s per 2,000 vectors of 768): PostgreSQL parses it
once with vector_in.
"""


def to_pgvector(vector) -> str:
    """'%.9g' keeps every float32 bit (9 significant digits round-trip a float32)."""
    return "[" + ",".join("%.9g" % x for x in vector.tolist()) + "]"
