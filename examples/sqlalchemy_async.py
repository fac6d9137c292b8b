"""The same with SQLAlchemy's asyncio engine (psycopg 3's async driver)."""
import asyncio
import os

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from orm_models import Doc  # on the table sqlalchemy_orm.py created


async def main() -> None:
    engine = create_async_engine(os.environ["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg_async://", 1))
    async with AsyncSession(engine) as session:
        session.add(Doc(body="tools for Japanese text input"))
        await session.commit()
        nearest = (await session.scalars(
            select(Doc).order_by(Doc.body_embedding.cosine_distance(func.embed("input methods"))).limit(1))).one()
        print(nearest.body)
    await engine.dispose()


asyncio.run(main())
