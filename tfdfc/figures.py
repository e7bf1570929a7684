"""The pictures beside report.md: accuracy against file size for the student's files, its
baselines and the teacher, and a grid of the trained generator's images.

matplotlib draws off-screen (Agg); every picture is written atomically like the other outputs.
"""

import io

import numpy as np

from tfdfc import artifacts

SIZE_ACCURACY = "report_size_accuracy.png"
GENERATED = "report_generated.png"
GRID_SIDE = 8  # images per row and column


def _pyplot():
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")
    from matplotlib import pyplot  # pylint: disable=import-outside-toplevel
    return pyplot


def _save(figure, path):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    _pyplot().close(figure)
    artifacts.write_bytes(path, buffer.getvalue())


def main_variant(files):
    """The student's main file among `files` (report.json `tflite` entries): the int8 file
    where there is one, else the float file, else the first; None without files."""
    return next((variant for variant in ("int8", "float") if variant in files),
                next(iter(files), None))


def size_accuracy_points(result):
    """(label, bytes, accuracy) of every measured point of a report: the teacher (its float32
    weights), each TFLite file, and the baselines at the size of the student's main file."""
    files = {variant: entry for variant, entry in result["tflite"].items()
             if entry.get("accuracy") is not None}
    points = []
    if result["teacher"].get("accuracy") is not None:
        points.append(("teacher", 4 * result["teacher"]["params"], result["teacher"]["accuracy"]))
    points += [(f"student {variant}", entry["bytes"], entry["accuracy"])
               for variant, entry in files.items()]
    main = files.get(main_variant(files))
    for name, baseline in (result.get("baselines") or {}).items():
        if main is not None and baseline and baseline.get("accuracy") is not None:
            points.append((name.replace("_", " "), main["bytes"], baseline["accuracy"]))
    return points


def write_size_accuracy(result, path):
    """Accuracy against bytes (log scale); False (nothing written) without accuracies."""
    points = size_accuracy_points(result)
    if not points:
        return False
    pyplot = _pyplot()
    figure, axes = pyplot.subplots(figsize=(6, 4))
    for index, (label, size, accuracy) in enumerate(points):
        axes.scatter(size, accuracy, s=60, marker="os^vDP*X"[index % 8], label=label)
    axes.set_xscale("log")
    from matplotlib import ticker  # pylint: disable=import-outside-toplevel
    bytes_label = ticker.FuncFormatter(lambda value, _: f"{value:,.0f}")
    axes.xaxis.set_major_formatter(bytes_label)
    sizes = [size for _, size, _ in points]
    # Sizes within one decade may have no major (power of ten) tick: label the minor ones then.
    axes.xaxis.set_minor_formatter(bytes_label if max(sizes) < 10 * min(sizes)
                                   else ticker.NullFormatter())
    axes.set_xlabel("bytes (teacher: 4 x parameters)")
    axes.set_ylabel(f"accuracy on {result.get('eval_data')}")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    _save(figure, path)
    return True


def write_series(series, path, xlabel, ylabel):
    """Lines with markers, one per {label: [(x, y), ...]}, x on a log scale (a size-accuracy
    front); written atomically."""
    pyplot = _pyplot()
    figure, axes = pyplot.subplots(figsize=(6, 4))
    for index, (label, values) in enumerate(series.items()):
        xs, ys = zip(*sorted(values))
        axes.plot(xs, ys, marker="os^vDP*X"[index % 8], label=label)
    axes.set_xscale("log")
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    _save(figure, path)


def tile(images, columns):
    """Tiles up to `columns`**2 images (values in [0, 1]) row by row into one [H, W, C] image;
    images of other than 1, 3 or 4 channels show their first."""
    images = np.clip(np.asarray(images, np.float32), 0.0, 1.0)
    if images.shape[-1] not in (1, 3, 4):
        images = images[..., :1]
    count = min(len(images), columns * columns)
    rows = int(np.ceil(count / columns))
    height, width, channels = images.shape[1:]
    grid = np.zeros((rows * height, columns * width, channels), np.float32)
    for index in range(count):
        row, column = divmod(index, columns)
        grid[row * height:(row + 1) * height, column * width:(column + 1) * width] = images[index]
    return grid


def each_to_unit_range(images):
    """A batch of NHWC images, each scaled on its own so that it spans [0, 1]."""
    images = np.asarray(images)
    low = images.min(axis=(1, 2, 3), keepdims=True)
    high = images.max(axis=(1, 2, 3), keepdims=True)
    return (images - low) / np.maximum(high - low, 1e-6)


def write_image_grid(images, path):
    """Up to GRID_SIDE**2 images, each scaled to [0, 1] on its own, tiled into one square image
    (one image to encode, not one matplotlib axes per sample)."""
    grid = tile(each_to_unit_range(np.asarray(images)[:GRID_SIDE * GRID_SIDE]), GRID_SIDE)
    scale = max(1, 256 // grid.shape[0])  # small images enlarged, pixels kept square
    grid = np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1)
    buffer = io.BytesIO()
    _pyplot().imsave(buffer, grid[..., 0] if grid.shape[-1] == 1 else grid, format="png",
                     cmap="gray", vmin=0, vmax=1)
    artifacts.write_bytes(path, buffer.getvalue())
