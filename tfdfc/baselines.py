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

from tfdfc import batchnorm, figures, guard, metrics, report
from tfdfc.keras_compat import tf
from tfdfc.loop import format_seconds, is_scheduled
from tfdfc.train import call_outputs, make_student_step


def measure(config, strategy, run, eval_set, rebuild, log=print):
    """The `baselines` section of report.json; `rebuild()` builds a fresh, untrained run."""
    result = {"no_training": None, "with_data": None}
    if eval_set is None:
        return result
    if config.student == "same":
        log("no-training baselines: the teacher compressed without training, measured")
        result["no_training"] = no_training(config, run, eval_set)
        result.update(run.method.more_baselines(config, run, eval_set))
    if config.with_data_baseline and len(eval_set.x_train):
        log(f"with-data baseline: {config.train.steps * config.train.student_steps} student "
            "steps on real training images")
        started = time.time()
        result["with_data"] = with_data(config, strategy, rebuild(), eval_set, log)
        result["with_data"]["seconds"] = round(time.time() - started, 1)
        log(f"with-data baseline: accuracy {result['with_data']['accuracy']:.4f} in "
            f"{result['with_data']['seconds']:.0f} s")
    return result


def below_no_training_warning(result, images):
    """One warning line where, on the evaluation data (`images` of them), the trained student
    scores below the no-training baseline by more than the noise (two binomial standard errors
    of the difference), else None. Both the Keras student and its main file
    (figures.main_variant) must fall short, so a loss of the file's own post-training
    quantization is not blamed on training. The fallback guard judges without data and can
    keep a student that real images show worse; this says so. Where the guard exported the
    untrained student instead, training's result is not what ships: nothing to say."""
    baseline = (result.get("baselines") or {}).get("no_training")
    verdict = result.get("guard") or {}
    files = {variant: entry for variant, entry in result["tflite"].items()
             if entry.get("accuracy") is not None}
    variant = figures.main_variant(files)
    keras = result["student"].get("accuracy")
    if (not baseline or baseline.get("accuracy") is None or variant is None or keras is None
            or guard.fell_back(verdict) or guard.saved_model_fell_back(verdict)):
        return None
    accuracy, untrained = max(files[variant]["accuracy"], keras), baseline["accuracy"]
    noise = metrics.binomial_noise([accuracy, untrained], images)
    if untrained - accuracy <= noise:
        return None
    return (f"WARNING: on the evaluation data the student scores {keras:.4f} (Keras), "
            f"{files[variant]['accuracy']:.4f} (student_{variant}.tflite), below the "
            f"no-training baseline's {untrained:.4f} by more than the noise ({noise:.4f}): "
            f"training made it worse"
            + (", and the fallback guard, which judges without data, kept it (report.json "
               "`guard`)" if verdict.get("checked") else ""))


def _recalibrate_on_real_images(strategy, student, eval_set):
    """batchnorm.recalibrate on the first real training images, as many as a data-free run
    recalibrates on; returns how many batch norms changed."""
    real = eval_set.x_train[:batchnorm.RECALIBRATION_IMAGES]
    size = batchnorm.RECALIBRATION_BATCH
    with strategy.scope():  # pruning wrappers apply their masks only inside it
        return batchnorm.recalibrate(student, (real[start:start + size]
                                               for start in range(0, len(real), size)))


def no_training(config, run, eval_set):
    """Accuracy of the teacher compressed without any training (the run's method's baseline);
    None where undefined, as for a student of another architecture."""
    if config.student != "same":
        return None
    return run.method.no_training(config, run, eval_set)


def with_data(config, strategy, fresh_run, eval_set, log=print):
    """Accuracy after the same number of student steps on real training images; a progress
    line with the ETA every --log_every iterations (it can take as long as the run, and after
    multi-worker training, which it follows on the chief alone, several times as long)."""
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
    started, steps = time.time(), config.train.steps
    every, recalibrated = config.train.recalibrate_batch_norm_every, 0
    for done in range(1, steps + 1):
        student_steps(iterator)
        if is_scheduled(done, every, steps):  # as the data-free student's loop
            recalibrated += bool(_recalibrate_on_real_images(strategy, players.student_model,
                                                             eval_set))
        if done % config.train.log_every == 0 and done < steps:
            rate = done / max(time.time() - started, 1e-9)
            log(f"with-data baseline: iteration {done}/{steps}  {rate:.2f} it/s  "
                f"ETA {format_seconds((steps - done) / rate)}")
    method = "same student steps and loss on real training images (no labels)"
    when = [f"every {every} iterations"] if recalibrated else []
    if config.recalibrate_batch_norm:  # as the data-free student, on real images here
        if _recalibrate_on_real_images(strategy, players.student_model, eval_set):
            when.append("after training")
    if when:
        method += "; batch norms recalibrated on real training images " + " and ".join(when)
    measured = players.student_model
    if fresh_run.compressed.final_model is not None:  # slimming: the cut network
        measured = fresh_run.compressed.final_model(measured)
    counted = report.counted_network(config, fresh_run, measured)  # as the student is
    with strategy.scope():  # pruning wrappers apply their masks only inside it
        accuracy = metrics.keras_accuracy(measured, eval_set.x_test, eval_set.y_test)
    return {"accuracy": accuracy, "kernel_params": metrics.kernel_parameter_count(counted),
            "macs": metrics.multiply_accumulates(counted),
            "method": method}



