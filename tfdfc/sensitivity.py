"""How much each layer's 4-bit weights hurt, measured without data (for `--quantize=mixed`).

1. A generator is trained against the teacher alone: for a few hundred steps it maximises the
   divergence KL(teacher || probe) where the probe is the teacher with every packable kernel at
   4 bits (weights only), plus the teacher's batch-norm statistics prior where it has batch
   norms (priors.py), so its images sit where real data does and where 4 bits do harm.
2. On a fixed set of its images, each layer alone is moved from 8 to 4 bits in a float copy of
   the teacher whose other kernels are on the 8-bit grid; its sensitivity is the growth of the
   mean KL(teacher || copy) over the all-8-bit copy.

Only the weight grid changes between the copies (activations are at 8 bits in every
assignment), so float copies with fake-quantized kernels measure it, with no QAT model to build
per layer. The QAT student is then trained data-free like any other (methods/mixed_precision.py).
"""

import numpy as np

from tfdfc import losses, metrics, priors, teacher_generator
from tfdfc.compression import mixed
from tfdfc.keras_compat import keras, tf

IMAGES = 512  # generated images the sensitivities are measured on
_BATCH = 128


class GridCopy:
    """A float copy of `teacher` whose kernels can be put on a given bit grid, layer by layer."""

    def __init__(self, teacher, names):
        self.model = keras.models.clone_model(teacher)
        self.model.set_weights(teacher.get_weights())
        self.model.trainable = False
        self._kernels = {
            layer.name: (variable, {bits: mixed.fake_quantized(variable.numpy(), bits,
                                                               mixed.range_axes(layer))
                                    for bits in mixed.CHOICES})
            for layer, variable in metrics.kernel_layers(self.model) if layer.name in names}

    def set_bits(self, bits):
        """Puts each kernel of `bits` ({layer: 4 or 8}) on its grid."""
        for name, value in bits.items():
            variable, grids = self._kernels[name]
            variable.assign(grids[value])


def mean_kl(teacher_logits, model, images):
    """Mean KL(teacher || model) over `images`, given the teacher's logits on them."""
    values = [losses.kl_divergence(teacher_logits[start:start + _BATCH],
                                   model(images[start:start + _BATCH], training=False),
                                   reduction="batchmean")
              for start in range(0, len(images), _BATCH)]
    return float(np.mean(np.concatenate([np.asarray(v) for v in values])))


def kl_growth(copy, teacher_logits, images, sizes, packed):
    """{layer: growth of the mean KL(teacher || copy) on `images` when that packed layer alone
    goes from 8 to 4 bits}, and the all-8-bit copy's KL; `copy` (a GridCopy) ends at 8 bits."""
    copy.set_bits(dict.fromkeys(sizes, 8))
    base = mean_kl(teacher_logits, copy.model, images)
    growth = {}
    for name in sizes:
        if name not in packed:
            continue
        copy.set_bits({name: 4})
        growth[name] = mean_kl(teacher_logits, copy.model, images) - base
        copy.set_bits({name: 8})
    return growth, base


def search_images(teacher, probe, config, space, log=print):
    """IMAGES images of a generator trained for `config.mixed_search_steps` steps to maximise
    KL(teacher || probe), with the batch-norm prior at `config.train.bn_prior_weight`."""
    train = config.train
    prior = priors.make_batch_norm_prior(teacher) if train.bn_prior_weight > 0 else None

    def loss(images):
        value = -tf.reduce_mean(losses.kl_divergence(teacher(images, training=False),
                                                     probe(images, training=False),
                                                     reduction="batchmean"))
        return value if prior is None else value + train.bn_prior_weight * prior(images)

    rng = np.random.default_rng(train.seed)
    generator = teacher_generator.train(teacher, loss, config, space, config.mixed_search_steps,
                                        rng, "mixed precision: generator search", log)
    return teacher_generator.draw(generator, IMAGES, train.latent_dim, rng)


def measure(teacher, sizes, packed, config, space, log=print):
    """{layer: sensitivity} of every packed layer of `teacher` (a flat logits model), and the
    all-8-bit copy's divergence they grow from; `sizes` are its kernel sizes (mixed.py)."""
    copy = GridCopy(teacher, list(sizes))
    copy.set_bits(mixed.all_bits(sizes, packed, 4))
    images = search_images(teacher, copy.model, config, space, log)
    teacher_logits = metrics.keras_logits(teacher, images, _BATCH)
    sensitivity, base = kl_growth(copy, teacher_logits, images, sizes, packed)
    log("mixed precision: sensitivities (KL growth at 4 bits) " + ", ".join(
        f"{name} {value:.2e}" for name, value in sensitivity.items()))
    return sensitivity, base
