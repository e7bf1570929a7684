"""Finds a lottery ticket with data (iterative magnitude pruning, reset to the original init),
to be trained data-free by `compress --ticket=PATH` (and `--ticket_reinit` for the control).

    python -m tfdfc.find_ticket --flagfile=flags/ticket_mnist5k.cfg
"""

from absl import flags

from tfdfc import cli, data, models
from tfdfc.compression import ticket

_DEFAULTS = ticket.TicketConfig()
_DATA = flags.DEFINE_string("data", _DEFAULTS.data, f"Training data: {data.SPECS_HELP}.")
_ARCHITECTURE = flags.DEFINE_string("architecture", _DEFAULTS.architecture,
                                    f"One of: {models.NAMES_HELP}.")
_ROUNDS = flags.DEFINE_integer("rounds", _DEFAULTS.rounds, "Pruning rounds.", lower_bound=1)
_ROUND_STEPS = flags.DEFINE_integer("round_steps", _DEFAULTS.round_steps,
                                    "SGD steps per round (the paper: 30,000).", lower_bound=1)
_PRUNE_FRACTION = flags.DEFINE_float("prune_fraction", _DEFAULTS.prune_fraction,
                                     "Fraction of the remaining weights removed per round.")
_LEARNING_RATE = flags.DEFINE_float("learning_rate", _DEFAULTS.learning_rate, "SGD lr.")
_MOMENTUM = flags.DEFINE_float("momentum", _DEFAULTS.momentum, "SGD momentum.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", _DEFAULTS.batch_size, "Batch size.",
                                   lower_bound=1)
_SEED = flags.DEFINE_integer("seed", _DEFAULTS.seed, "Random seed (the original init).")
_OUTPUT = flags.DEFINE_string("output", _DEFAULTS.output, "Ticket file (.npz).")


def main(argv):
    del argv  # cli.run refuses positional arguments
    ticket.find(ticket.TicketConfig(
        data=_DATA.value, architecture=_ARCHITECTURE.value, rounds=_ROUNDS.value,
        round_steps=_ROUND_STEPS.value, prune_fraction=_PRUNE_FRACTION.value,
        learning_rate=_LEARNING_RATE.value, momentum=_MOMENTUM.value,
        batch_size=_BATCH_SIZE.value, seed=_SEED.value, output=_OUTPUT.value), log=cli.log)


if __name__ == "__main__":
    cli.run(main)
