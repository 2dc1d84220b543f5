"""Where training runs: the runner TRAIN_RUNNER names, built from the settings."""

from __future__ import annotations

from training.prepare import RunSetupError
from training.runners import LocalRunner, Runner, SshRunner, SshTarget
from training.settings import PipelineSettings


def make_runner(settings: PipelineSettings) -> Runner:
    """The runner TRAIN_RUNNER chooses, set up from TRAIN_SSH_*, TRAIN_NUM_GPUS and
    TRAIN_GPU_IDS."""
    if settings.train_runner == "local":
        return LocalRunner(num_gpus=settings.train_num_gpus, gpu_ids=settings.gpu_ids)
    if not settings.train_ssh_host:
        raise RunSetupError(
            "TRAIN_RUNNER=ssh needs TRAIN_SSH_HOST (the GPU host's name or address)."
        )
    target = SshTarget(
        host=settings.train_ssh_host,
        port=settings.train_ssh_port,
        user=settings.train_ssh_user,
        key_path=settings.train_ssh_key_path,
        known_hosts=settings.known_hosts_path,
        work_dir=settings.train_ssh_work_dir,
        python=settings.train_ssh_python,
    )
    return SshRunner(target, num_gpus=settings.train_num_gpus, gpu_ids=settings.gpu_ids)
