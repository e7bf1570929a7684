"""Measures a saved student (.keras, .h5, SavedModel directory or .tflite) on a data set.

    python -m tfdfc.evaluate --model=exported/demo/student_int8.tflite --eval_data=mnist5k

Prints the accuracy and sizes; `--json` prints them as one JSON object instead.
"""

import json

from absl import flags

from tfdfc import cli, data, evaluation

_MODEL = flags.DEFINE_string("model", None, "A .keras or .h5 file, a SavedModel directory, or a "
                             ".tflite file.")
_EVAL_DATA = flags.DEFINE_string("eval_data", None, f"{data.SPECS_HELP} (an .npz holds x_test, "
                                 "y_test, preprocessed as the model expects).")
_JSON = flags.DEFINE_bool("json", False, "Print one JSON object instead of text.")
_UNSAFE_LOAD = flags.DEFINE_bool("unsafe_load", False, "Allow a tf-keras file that holds code "
                                  "(Lambda layers).")

flags.mark_flags_as_required(["model", "eval_data"])


def main(argv):
    del argv  # cli.run refuses positional arguments
    result = evaluation.evaluate(_MODEL.value, data.load(_EVAL_DATA.value), _UNSAFE_LOAD.value)
    if _JSON.value:
        print(json.dumps(result))
        return
    sizes = (f"{result['bytes']:,} bytes ({result['gzip_bytes']:,} gzipped), {result['delegate']}"
             if result["format"] == "tflite" else
             f"{result['params']:,} parameters, sparsity {result['sparsity']:.3f}, "
             f"{result['macs']:,} MACs")
    print(f"{result['path']}: accuracy {result['accuracy']:.4f} on {result['examples']:,} "
          f"{_EVAL_DATA.value} test images; {sizes}")


if __name__ == "__main__":
    cli.run(main)
