"""report.md's pictures: the tiled grid of generated images (tfdfc/figures.py)."""

import numpy as np
from matplotlib import image as mpimage

from tfdfc import figures


def test_tile_places_images_row_by_row_and_leaves_the_rest_black():
    images = np.stack([np.full((2, 3, 1), value) for value in (0.25, 0.5, 1.0)])
    grid = figures.tile(images, columns=2)
    assert grid.shape == (4, 6, 1)
    assert grid[0, 0, 0] == 0.25 and grid[0, 3, 0] == 0.5 and grid[2, 0, 0] == 1.0
    assert grid[2, 3, 0] == 0  # the fourth cell has no image


def test_tile_clips_and_keeps_one_channel_of_odd_channel_counts():
    grid = figures.tile(np.full((1, 2, 2, 5), 3.0), columns=1)
    assert grid.shape == (2, 2, 1) and grid.max() == 1.0


def test_image_grid_is_one_png_of_the_images_each_scaled_on_its_own(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.normal(size=(64, 8, 8, 1)) * np.arange(1, 65)[:, None, None, None]
    path = tmp_path / "grid.png"
    figures.write_image_grid(images, str(path))
    picture = mpimage.imread(str(path))
    side = 8 * 8 * (256 // 64)  # 8 images of 8 pixels, enlarged 4 times
    assert picture.shape[:2] == (side, side)
    # Every image spans black to white after its own scaling, whatever its amplitude.
    cell = picture[:32, :32, 0]
    assert cell.min() == 0 and cell.max() == 1
