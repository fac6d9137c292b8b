"""SQLAlchemy 2 ORM on an auto-embedding table: add + commit fills the vector; nearest neighbours through
the ORM; search() as a table function."""
import os

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session

from orm_models import DIMENSION, Base, Doc

engine = create_engine(os.environ["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1))
Base.metadata.create_all(engine)
with engine.begin() as conn:
    conn.execute(text("CALL pgbert.enable_embedding('orm_docs', 'body')"))

with Session(engine) as session:
    session.add_all([Doc(body="compress files with gzip"), Doc(body="a game about ancient wars")])
    session.commit()
    doc = session.scalars(select(Doc).where(Doc.body.like("a game%")).order_by(Doc.id.desc())).first()
    session.refresh(doc)
    assert doc.body_embedding is not None and len(doc.body_embedding) == DIMENSION   # filled by the database

    nearest = session.scalars(select(Doc).order_by(Doc.body_embedding.cosine_distance(func.embed("zip archives")))
                              .limit(1)).one()
    found = session.execute(select(text("content")).select_from(func.search("zip archives", 1, "orm_docs"))).scalar()
    print(nearest.body, "|", found)
