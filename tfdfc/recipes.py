"""Recipes: the training settings a run takes, per scheme and student init, where the user set
none. Explicit flags always win; report.json records the recipe and what it set.

The paper's CIFAR-10 defaults (80,000 iterations, student rate 2e-3, 128-wide generator) are
hours on a CPU and, for a student that starts from the teacher's weights, a rate that walks it
away from the teacher faster than the generator can find where it errs. Where the values come
from: the `qat` prior from a one-seed ablation on validation images of a Fashion-MNIST ResNet,
its rate from 3 validation seeds of the zoo's MobileNetV2 and ResNet; the `magnitude` prior,
attention points, feature weight, fresh latents and iterations from 3-6 validation seeds each
of that MobileNetV2 at 90 % + int8 (fresh latents and iterations also checked on the ResNet);
the `binary` prior, its attention, feature maps and fresh latents (as one bundle), its
generator width and iterations, from 3 validation seeds each of the Fashion-MNIST WRN-16-1, as
`qat_low_activations`' bundle; `fresh_copy`'s from 3 validation seeds of its distillation
into a fresh copy, the `distill` prior and `distill_maps`' bundle from 3 validation seeds each
of the Fashion-MNIST WRN-16-1 distilled into a WRN-10-1 (bench/NOTES.md); the others from the
mnist5k presets in flags/, tuned by earlier benches on mnist5k's test split. bench/zoo.py is
the multi-seed check. The reasoning:

- `qat`: int8 or w<b>a<c> with 8-bit activations from the teacher's weights, and a float copy
  of the teacher: the student starts next to the teacher and only has to absorb rounding, so
  a small rate (5e-5) and a short run; larger rates lost accuracy on BatchNorm networks (at
  2e-4 a MobileNetV2 w4a8 student ended below its untrained twin). The batch-norm prior
  (priors.py) keeps a BatchNorm teacher's generator from collapsing onto one class, where the
  student otherwise drifted below the untrained int8 model.
- `qat_low_activations`: w<b>a<c> with activations below 8 bits. Rounding activations to 16
  levels moves the student much further from the teacher than rounding weights does (after
  `qat`'s run, w4a4 stayed far below w4a8), so `qat` plus the `magnitude` recipe's attention
  and feature maps at inferred points and fresh latents, adopted as one bundle as for
  `binary`: paired on the same seeds it lifted every seed. And activation ranges that start
  from the first batches (`--activation_ranges=from_batches`), not at TF-MOT's +-6, which a
  200-iteration run never leaves far behind: paired on three validation seeds of the
  Fashion-MNIST WRN-16-1 it lifted every seed's file (bench/NOTES.md). The lift is the
  untrained twin's: calibrated on generated images with those ranges it agrees with the
  teacher more than the trained student does, so the fallback guard (guard.py) ships it.
- `binary`: sign(weights) is far from the teacher: the paper's rate and symmetric KL. The
  batch-norm prior: without it a binary WRN-16-1's generator covered about half of
  Fashion-MNIST's classes and the student ended far under its teacher; with it, most
  classes, and the student far closer. The `magnitude` recipe's attention and feature maps at
  inferred points and fresh latents, adopted as one bundle: the binary student relearns each
  stage's output from the teacher's maps, not from ten logits alone; paired on the same seeds
  it lifted every seed, at a higher cost per iteration (the extra losses and generator calls).
  A generator 64 channels wide, as for `magnitude`: paired on the same seeds it lifted the
  binary WRN-16-1 by more than two standard errors of the pairs (by a hair) and steadied the
  seeds, at about a fifth more time per iteration. 800 iterations, not 400: paired on the same
  seeds they lifted every seed by more than two standard errors of the pairs, for twice the
  training time.
- `magnitude`: pruning removes weights on a schedule and the student has to recover: rate 2e-3
  (5e-3 let the generator collapse on some seeds) and symmetric KL, the paper's for pruning.
  The batch-norm prior, as for `qat`: without it a 90 %-pruned MobileNetV2's generator covered
  fewer classes and the student ended far lower. Attention transfer at inferred points (a
  user's model names none), and the whole feature maps there too (feature distillation): the
  pruned student relearns each stage's output from the teacher's maps, not from ten logits;
  attention at β 50, not the paper's 250, whose term dwarfed the divergence. A fresh z for
  every student step: with one batch per iteration the student matched the teacher on the
  few batches it saw and stayed far below it on real images. 800 iterations: paired with 400
  on the same teachers and seeds, more iterations lifted every pair of both BatchNorm teachers.
  A generator 64 channels wide, not 32: paired on the same seeds it lifted the MobileNetV2 by
  more than noise and left the ResNet within noise, at a higher cost per iteration.
- `slim`: the paper's slimming settings with symmetric KL.
- `fresh_copy`: a fresh (random) student of the teacher's architecture learns everything from
  generated images: the longest run, with the `magnitude` recipe's batch-norm prior, attention
  and feature maps at inferred points, which line up only because the two networks are alike.
- `distill_maps`: a fresh student of another architecture that has the teacher's feature maps
  (same shapes) where attention transfer compares them, e.g. a shallower WRN of the same
  widths: `distill` plus `fresh_copy`'s attention and feature maps at inferred points and a
  fresh z every student step. Paired on the same seeds with `distill`, it lifted every seed of
  the Fashion-MNIST WRN-16-1 distilled into a WRN-10-1, at half again the training time.
- `distill`: a fresh student of another architecture (feature maps of other widths) or a
  lottery ticket: the long run on logits alone, as tuned on LeNet-5. The batch-norm prior, as
  for `binary`: without it a BatchNorm teacher's generator showed it 6-8 of Fashion-MNIST's
  classes and the fresh WRN-10-1 student ended far under its teacher; with it, 8-9 classes,
  and every seed far higher. No effect on a teacher without batch norms.
- Batch-norm recalibration is off in every recipe: on 3 validation seeds of the Fashion-MNIST
  WRN-16-1 it lifted magnitude pruning at 95 % but not at 90 %, which share `magnitude`, and
  cost binary students; the 95 % preset in flags/ turns it on.
"""

import dataclasses

# Fields a recipe sets: CompressConfig's and TrainConfig's.
CONFIG_FIELDS = ("generator_channels", "activation_ranges", "recalibrate_batch_norm")
TRAIN_FIELDS = ("steps", "student_lr", "divergence", "bn_prior_weight", "attention_weight",
                "attention_points", "feature_weight", "resample_latents")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One line of the table: what a run of this kind trains with unless told otherwise."""

    name: str
    steps: int  # iterations
    student_lr: float
    divergence: str
    generator_channels: int
    bn_prior_weight: float = 0.0  # acts only on teachers with batch norms
    attention_weight: float = 250.0  # the paper's beta
    attention_points: str = "named"  # inferred: also where the teacher names none (attention.py)
    feature_weight: float = 0.0  # feature-map distillation at the attention points
    resample_latents: bool = False  # a fresh z for every student step, not one per iteration
    activation_ranges: str = "tfmot"  # where n-bit activation ranges start (quantize.py)
    recalibrate_batch_norm: bool = False  # frozen statistics from generated images at the end

    def values(self):
        return {field: getattr(self, field) for field in CONFIG_FIELDS + TRAIN_FIELDS}


RECIPES = {recipe.name: recipe for recipe in (
    Recipe("qat", steps=200, student_lr=5e-5, divergence="kl", generator_channels=32,
           bn_prior_weight=1.0),
    Recipe("qat_low_activations", steps=200, student_lr=5e-5, divergence="kl",
           generator_channels=32, bn_prior_weight=1.0, attention_weight=50.0,
           attention_points="inferred", feature_weight=1.0, resample_latents=True,
           activation_ranges="from_batches"),
    Recipe("binary", steps=800, student_lr=2e-3, divergence="skl", generator_channels=64,
           bn_prior_weight=1.0, attention_weight=50.0, attention_points="inferred",
           feature_weight=1.0, resample_latents=True),
    Recipe("magnitude", steps=800, student_lr=2e-3, divergence="skl", generator_channels=64,
           bn_prior_weight=1.0, attention_weight=50.0, attention_points="inferred",
           feature_weight=1.0, resample_latents=True),
    Recipe("slim", steps=1000, student_lr=2e-3, divergence="skl", generator_channels=32),
    Recipe("fresh_copy", steps=600, student_lr=2e-3, divergence="kl", generator_channels=32,
           bn_prior_weight=1.0, attention_weight=50.0, attention_points="inferred",
           feature_weight=1.0),
    Recipe("distill_maps", steps=600, student_lr=2e-3, divergence="kl", generator_channels=32,
           bn_prior_weight=1.0, attention_weight=50.0, attention_points="inferred",
           feature_weight=1.0, resample_latents=True),
    Recipe("distill", steps=600, student_lr=2e-3, divergence="kl", generator_channels=32,
           bn_prior_weight=1.0),
)}


def recipe_name(config, maps_line_up=None):
    """The recipe for a CompressConfig: `fresh_copy` for an unpruned random student of the
    teacher's architecture (slimming would fight its feature maps); `distill_maps` for an
    uncompressed random student of another architecture whose feature maps have the teacher's
    shapes where attention transfer compares them (`maps_line_up(config)` says so: it needs the
    models, which a config alone does not hold; None answers no); `distill` for other fresh
    students and tickets; else its method's."""
    if config.ticket:
        return "distill"
    if config.resolved_student_init == "random":
        if config.student == "same" and config.prune == "none":
            return "fresh_copy"
        if (not config.compressing_the_teacher and maps_line_up is not None
                and maps_line_up(config)):
            return "distill_maps"
        return "distill"
    return config.method.recipe_for(config)


def resolve(config, explicit, maps_line_up=None):
    """`config` with every recipe field the user did not set (not in `explicit`, a set of
    field names) taken from its recipe (`recipe_name`'s, which `maps_line_up` serves), and
    `recipe` naming it."""
    recipe = RECIPES[recipe_name(config, maps_line_up)]
    values = {name: value for name, value in recipe.values().items() if name not in explicit}
    top = {name: values[name] for name in CONFIG_FIELDS if name in values}
    train = dataclasses.replace(config.train, **{name: values[name] for name in TRAIN_FIELDS
                                                 if name in values})
    return dataclasses.replace(config, recipe=recipe.name, train=train, **top)


def describe(values):
    """One line of a recipe's settings (`values`: {field: value}, as Recipe.values gives)."""
    return (f"{values['steps']} iterations, student rate {values['student_lr']:g}, "
            f"{values['divergence']}, generator width {values['generator_channels']}, "
            f"batch-norm prior {values['bn_prior_weight']:g}, attention weight "
            f"{values['attention_weight']:g} at {values['attention_points']} points, feature "
            f"weight {values['feature_weight']:g}"
            + (", fresh z per student step" if values["resample_latents"] else "")
            + (", activation ranges from the first batches"
               if values["activation_ranges"] == "from_batches" else "")
            + (", batch norms recalibrated on generated images"
               if values["recalibrate_batch_norm"] else ""))


def settings_of(config):
    """{field: value} of the fields a recipe sets, as a CompressConfig holds them (given flags
    included): what the run trains with, for report.json and `run_line`."""
    return {**{name: getattr(config.train, name) for name in TRAIN_FIELDS},
            **{name: getattr(config, name) for name in CONFIG_FIELDS}}


def run_line(config):
    """The progress line naming a resolved config's recipe and the settings the run trains
    with (given flags included); None when no recipe filled it (`pipeline.run` from Python)."""
    if not config.recipe:
        return None
    return (f"recipe {config.recipe} for the settings left unset; trains with "
            f"{describe(settings_of(config))}")
