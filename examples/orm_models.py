"""The mapped class of the SQLAlchemy examples: a table whose rows embed themselves."""
import os

from pgvector.sqlalchemy import Vector
from sqlalchemy import Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

DIMENSION = int(os.environ.get("PGBERT_DIMENSION", "768"))  # the active model's (pgbert.active_model)


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "orm_docs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    body: Mapped[str] = mapped_column(String)
    body_embedding = mapped_column(Vector(DIMENSION), nullable=True)  # filled by pgbert's triggers
