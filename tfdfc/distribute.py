"""Choosing a `tf.distribute` strategy, and splitting a CPU into logical devices for tests."""

from tfdfc.errors import ConfigError
from tfdfc.keras_compat import tf

STRATEGIES = ("mirrored", "one_device")


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
    """A strategy of `kind`: `mirrored` over `devices` (default: every GPU, else the CPU)."""
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy(devices=devices)
    if kind == "one_device":
        return tf.distribute.OneDeviceStrategy((devices or ["/cpu:0"])[0])
    raise ConfigError(f"strategy must be one of {STRATEGIES}, got {kind!r}")
