"""What every absl binary shares: flag parsing, progress lines, and turning user errors into a
one-line message with exit code 2 (a traceback is kept for real bugs)."""

import signal
import sys
import threading
import time

from absl import app, flags

from tfdfc import distribute
from tfdfc.errors import ConfigError, UserInputError
from tfdfc.loop import RunInterrupted, TrainingDiverged

USER_ERROR_EXIT_CODE = 2

# TensorFlow speaks at INFO on every SavedModel save and TFLite conversion (assets written,
# fingerprints, sharding callbacks), through its own logger and through absl's: dozens of lines
# that bury the progress lines. absl.app raises --verbosity to INFO when it is not given; our
# binaries keep it at WARNING instead, so `--verbosity=0` brings those lines back.
QUIET_VERBOSITY = -1  # absl's WARNING


def log(message):
    """Prints a timestamped progress line immediately."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _quiet_tensorflow_logs():
    if not flags.FLAGS["verbosity"].present:
        flags.FLAGS.verbosity = QUIET_VERBOSITY


def _parse_flags(argv):
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        print(f"error: {error}\nPass --help to see the flags.", file=sys.stderr)
        sys.exit(USER_ERROR_EXIT_CODE)


def _stop_on_terminate(signal_number, frame):
    """SIGTERM outside training (where the loop checkpoints first): an exception, so that what
    was being written is removed as on any failure (artifacts.atomic_path), where the default
    action would end the process at once and leave its staging folder behind."""
    del frame
    raise RunInterrupted(f"stopped by {signal.Signals(signal_number).name}; nothing half-written "
                         "is left", signal_number)


def run(main, argv=None):
    """`app.run(main)`, with bad flag values and UserInputError exiting with code 2. `argv`
    (default sys.argv) lets tests drive a binary in-process."""

    def guarded(argv):
        # Not in a cluster's worker, which its peers would wait for (distribute.in_cluster).
        catch = (threading.current_thread() is threading.main_thread()
                 and not distribute.in_cluster())
        previous = signal.signal(signal.SIGTERM, _stop_on_terminate) if catch else None
        try:
            if len(argv) > 1:
                raise ConfigError(f"unexpected arguments: {' '.join(argv[1:])}")
            _quiet_tensorflow_logs()
            main(argv)
        except UserInputError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(USER_ERROR_EXIT_CODE)
        except TrainingDiverged as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(1)
        except RunInterrupted as error:
            print(str(error), file=sys.stderr)
            sys.exit(128 + error.signal_number)
        except KeyboardInterrupt:  # Ctrl-C outside training: a line, not a traceback
            print("stopped by SIGINT; nothing half-written is left", file=sys.stderr)
            sys.exit(128 + signal.SIGINT)
        finally:
            if catch and previous is not None:  # a test drives binaries in its own process
                signal.signal(signal.SIGTERM, previous)

    app.run(guarded, argv=argv, flags_parser=_parse_flags)
