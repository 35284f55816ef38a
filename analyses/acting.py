"""Who is asking: the shared Workbench as one signed-in user sees it (no Streamlit here; app/auth.py signs in).

What a user starts or shares records them (jobs, share links, uploads); a user cancels only their own jobs, an
operator anyone's. The single-user local tool and the CLI act as `LOCAL`, the operator of their own machine.
"""
from __future__ import annotations

from dataclasses import dataclass

from compute.errors import BadInput
from compute.store import JobRecord


@dataclass(frozen=True)
class User:
    name: str  # "" for the local tool and the CLI
    operator: bool = False


LOCAL = User("", operator=True)


class Acting:
    """Delegates to the shared Workbench; run, submit, share and cancel carry the user."""

    def __init__(self, wb, user: User):
        self._wb = wb
        self.user = user

    def __getattr__(self, name):
        return getattr(self._wb, name)

    def run(self, spec, progress=None, force: bool = False):
        return self._wb.run(spec, progress=progress, force=force, owner=self.user.name)

    def submit(self, spec) -> JobRecord:
        return self._wb.submit(spec, owner=self.user.name)

    def share(self, spec) -> str:
        """Store the spec behind a share link, recording who shared it first."""
        return self._wb.store.put_spec(spec.to_dict(), creator=self.user.name)

    def may_cancel(self, rec: JobRecord) -> bool:
        return self.user.operator or (bool(rec.owner) and rec.owner == self.user.name)

    def cancel(self, job_id: str) -> JobRecord | None:
        rec = self._wb.jobs.get(job_id)
        if rec is not None and not self.may_cancel(rec):
            raise BadInput(f"job {job_id} was started by {rec.owner or 'someone before sign-in'}; only they or an "
                           f"operator can cancel it")
        return self._wb.jobs.cancel(job_id)
