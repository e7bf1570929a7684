"""What data-free training buys: the same student with no training, and with real data.

- no training: the teacher compressed directly. Binary: delta * sign(teacher weights). int8:
  TFLite post-training quantization calibrated on Gaussian noise (no data at all). n-bit: the
  QAT-wrapped teacher with activation ranges set by forward passes on Gaussian noise.
- with data: a fresh copy of the same student trained with exactly the same student steps,
  loss, optimizer and clipping, on real training images instead of generated ones (distillation
  from the teacher, no labels). This is the paper's "trained with data" comparison at equal
  student steps. It runs only when the evaluation data has a training split.
"""

import time

import numpy as np

from tfdfc import export, metrics
from tfdfc.compression import binary, quantize
from tfdfc.keras_compat import tf
from tfdfc.train import call_outputs, make_student_step

NOISE_SAMPLES = 256


def measure(config, strategy, run, eval_set, rebuild, log=print):
    """The `baselines` section of report.json; `rebuild()` builds a fresh, untrained run."""
    result = {"no_training": None, "with_data": None}
    if eval_set is None:
        return result
    result["no_training"] = no_training(config, run, eval_set)
    if config.with_data_baseline and len(eval_set.x_train):
        log(f"with-data baseline: {config.train.steps * config.train.student_steps} student "
            "steps on real training images")
        started = time.time()
        result["with_data"] = with_data(config, strategy, rebuild(), eval_set)
        result["with_data"]["seconds"] = round(time.time() - started, 1)
        log(f"with-data baseline: accuracy {result['with_data']['accuracy']:.4f} in "
            f"{result['with_data']['seconds']:.0f} s")
    return result


def _noise(shape, seed, space):
    """Gaussian noise in the teacher's input space (input_space.py)."""
    return space.images(np.random.default_rng(seed).normal(size=(NOISE_SAMPLES,) + shape))


def no_training(config, run, eval_set):
    """Accuracy of the teacher compressed without any training; None where undefined."""
    spec = config.quant_spec
    if spec.scheme == "none" or config.student != "same":
        return None
    teacher = export.plain_copy(run.teacher_logits)
    images, labels = eval_set.x_test, eval_set.y_test
    if spec.scheme == "binary":
        model = binary.sign_only(teacher, run.compressed.delta)
        return {"accuracy": metrics.keras_accuracy(model, images, labels),
                "method": f"delta*sign(teacher weights), delta={run.compressed.delta:.4g}"}
    noise = _noise(eval_set.input_shape, config.train.seed, run.input_space)
    if spec.scheme == "int8":
        payload = export.tflite_int8(teacher, noise)
        return {"accuracy": metrics.accuracy(metrics.tflite_outputs(payload, images), labels),
                "method": "TFLite post-training int8 calibrated on Gaussian noise"}
    model = quantize.quantize_nbit(teacher, spec.weight_bits, spec.act_bits)
    kept = {w.name: w.numpy() for w in model.weights if not _is_range(w)}
    for start in range(0, len(noise), 32):
        model(noise[start:start + 32], training=True)  # moves the activation ranges only...
    for weight in model.weights:
        if weight.name in kept:
            weight.assign(kept[weight.name])  # ...so restore batch-norm statistics and steps
    return {"accuracy": metrics.keras_accuracy(model, images, labels),
            "method": f"QAT-wrapped teacher, no weight update; activation ranges from the "
                      f"initial +-6 after {len(noise) // 32} Gaussian-noise batches"}


def _is_range(weight):
    return weight.name.split(":")[0].endswith(("_min", "_max"))


def with_data(config, strategy, fresh_run, eval_set):
    """Accuracy after the same number of student steps on real training images."""
    players = fresh_run.players
    student_step = make_student_step(strategy, players, config.train)

    @tf.function
    def student_steps(iterator):  # one graph call per iteration's worth of student steps
        for _ in tf.range(config.train.student_steps):
            images = next(iterator)
            student_step(images, strategy.run(
                lambda x: call_outputs(players.teacher, x, training=False), args=(images,)))

    batches = (tf.data.Dataset.from_tensor_slices(eval_set.x_train)
               .shuffle(len(eval_set.x_train), seed=config.train.seed).repeat()
               .batch(config.train.batch_size, drop_remainder=True))
    iterator = iter(strategy.experimental_distribute_dataset(batches))
    for _ in range(config.train.steps):
        student_steps(iterator)
    measured = players.student_model
    if fresh_run.compressed.final_model is not None:  # slimming: the cut network
        measured = fresh_run.compressed.final_model(measured)
    with strategy.scope():  # pruning wrappers apply their masks only inside it
        accuracy = metrics.keras_accuracy(measured, eval_set.x_test, eval_set.y_test)
    return {"accuracy": accuracy, "kernel_params": metrics.kernel_parameter_count(measured),
            "macs": metrics.multiply_accumulates(measured),
            "method": "same student steps and loss on real training images (no labels)"}



