"""Choosing a `tf.distribute` strategy, the chief of a multi-worker run, and splitting a CPU into
logical devices for tests."""

import json
import os

from tfdfc.errors import ConfigError
from tfdfc.keras_compat import tf

STRATEGIES = ("mirrored", "multi_worker", "one_device")


def split_cpu(count):
    """Makes `count` logical CPU devices; must run before TensorFlow initialises its devices."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)])
    except RuntimeError as error:  # already initialised: fine if the split is already there
        if len(tf.config.list_logical_devices("CPU")) < count:
            raise RuntimeError(f"TensorFlow has already initialised its devices; call "
                               f"split_cpu({count}) before any TensorFlow op runs") from error


def make_strategy(kind="mirrored", devices=None):
    """A strategy of `kind`.

    - mirrored: one machine, over `devices` (default: every GPU, else the CPU);
    - multi_worker: MultiWorkerMirroredStrategy configured from the TF_CONFIG environment
      variable (create it before any other TensorFlow op runs);
    - one_device: `devices[0]` or the CPU.
    """
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy(devices=devices)
    if kind == "multi_worker":
        _check_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    if kind == "one_device":
        return tf.distribute.OneDeviceStrategy((devices or ["/cpu:0"])[0])
    raise ConfigError(f"strategy must be one of {STRATEGIES}, got {kind!r}")


def _check_tf_config():
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise ConfigError("--strategy=multi_worker needs the TF_CONFIG environment variable "
                          "(cluster and task of this worker; see docs/distributed.md)")
    try:
        config = json.loads(text)
        config["cluster"], config["task"]["type"], config["task"]["index"]  # pylint: disable=pointless-statement
    except (ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"TF_CONFIG is not valid: {error!r}") from error


def in_cluster():
    """Whether this process is one of several workers (TF_CONFIG names more than one task): a
    signal must then not stop it on its own at any point, or its peers wait for it in a
    collective op; the training loop's checkpoint at the end of an iteration keeps them in step."""
    try:
        cluster = json.loads(os.environ.get("TF_CONFIG") or "{}").get("cluster", {})
        return sum(len(tasks) for tasks in cluster.values()) > 1
    except (ValueError, AttributeError, TypeError):
        return False


def task(strategy):
    """(task_type, task_id) of this process; ('chief', 0) outside multi-worker training."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return "chief", 0
    return resolver.task_type, resolver.task_id


def is_chief(strategy):
    """Whether this process writes checkpoints, summaries and exports."""
    task_type, task_id = task(strategy)
    if task_type == "chief":
        return True
    has_chief = "chief" in strategy.cluster_resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief


def worker_checkpoint_dir(checkpoint_dir, strategy):
    """Where this process saves checkpoints: the real dir on the chief, a scratch dir elsewhere
    (every worker must take part in a save, only the chief's is kept)."""
    if is_chief(strategy):
        return checkpoint_dir
    task_type, task_id = task(strategy)
    return os.path.join(os.path.dirname(checkpoint_dir), f".{task_type}_{task_id}_checkpoints")
