from healthmail.celery import app

from . import chain


@app.task(ignore_result=True, time_limit=120)
def audit_seal() -> int:
    return chain.seal_all()


@app.task(ignore_result=True, time_limit=120)
def audit_checkpoint() -> int:
    chain.seal_all()
    return chain.checkpoint_export()
