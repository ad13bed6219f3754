"""The camroll server: FastAPI app (``app.create_app``), routers in ``api``, rules in ``services``,
database access in ``repositories``, originals in ``storage``.  Never imports ``camroll.agent``."""
