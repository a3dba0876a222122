from healthmail.celery import app

from . import alerts, chain


@app.task(ignore_result=True, soft_time_limit=110, time_limit=120)
def audit_seal() -> int:
    return chain.seal_all()


@app.task(ignore_result=True, soft_time_limit=110, time_limit=120)
def audit_checkpoint() -> int:
    chain.seal_all()
    return chain.checkpoint_export()


@app.task(ignore_result=True, soft_time_limit=280, time_limit=300)
def audit_alerts_scan() -> int:
    chain.seal_all()
    return alerts.alerts_scan()


@app.task(ignore_result=True, soft_time_limit=3500, time_limit=3600)
def audit_verify_all() -> int:
    """Hourly: verify every chain, record the result for the status banner, alert on a break."""
    broken = 0
    for chain_id in chain.chain_ids():
        report = chain.verification_record(chain_id, found_by="hourly verification")
        broken += not report.ok
    return broken
