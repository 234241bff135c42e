"""`remove_maintenance_on_init`: take this worker out of maintenance before the first pop.

The worker record is found by its exact name (`GET /v2/workers/name/{name}`) and switched with the
owner's key (`PUT /v2/workers/{id} {"maintenance": false}`), as the official worker does at start.
Nothing here stops the worker: if the horde refuses or cannot be reached, the pops that follow
report the maintenance (or the fault) themselves, with what to do.
"""

from __future__ import annotations

from loguru import logger

from horde_worker_regen.horde.client import HordeClient
from horde_worker_regen.horde.errors import HordeRequestError, classify


async def remove_maintenance(client: HordeClient, worker_name: str) -> bool:
    """Lift maintenance on the worker named `worker_name`; True if the horde confirmed it is off."""
    try:
        worker_id = await client.worker_id_by_name(worker_name)
        if worker_id is None:
            logger.info(
                f"remove_maintenance_on_init: the horde has no worker named '{worker_name}' yet; nothing to lift"
            )
            return False
        answer = await client.set_maintenance(worker_id, False)
    except HordeRequestError as error:
        hint = classify(error).operator_message
        logger.warning(
            f"remove_maintenance_on_init: could not take the worker out of maintenance ({error})"
            + (f": {hint}" if hint else "")
        )
        return False
    lifted = answer.get("maintenance") is False
    if lifted:
        logger.info(f"remove_maintenance_on_init: worker '{worker_name}' is out of maintenance")
    else:
        logger.warning(f"remove_maintenance_on_init: the horde answered {answer}; maintenance may still be on")
    return lifted
