import subprocess
import sys

import torch

from huajia.scorers.world_features import load_feature_net
from huajia.training.features import label_names, scene_labels
from huajia.world.spec import ObjectGroup, PlacedObject, Scene, SceneSpec


def test_labels_name_the_object_centred_in_each_cell():
    names = label_names()
    spec = SceneSpec((ObjectGroup("circle", 1, "red", "solid", "large"),
                      ObjectGroup("hexagon", 1, "blue", "checkered", "small")))
    scene = Scene(spec, (PlacedObject(0, "circle", "red", "solid", "large", 0.1, 0.1, 0.175),
                         PlacedObject(1, "hexagon", "blue", "checkered", "small", 0.9, 0.6, 0.095)),
                  "gray")
    labels = scene_labels(scene, names)
    assert names["cell_shape"][labels["cell_shape"][0, 0]] == "circle"
    assert names["cell_texture"][labels["cell_texture"][2, 3]] == "checkered"  # row 2 (y 0.6), col 3
    assert (labels["cell_shape"] > 0).sum() == 2
    assert names["main"][labels["main"]] == "red circle"
    assert names["background"][labels["background"]] == "gray"


def test_train_features_writes_a_loadable_network_with_its_card(tmp_path):
    done = subprocess.run([sys.executable, "-m", "huajia", "train", "features", "--out", str(tmp_path / "f"),
                           "--images", "256", "--epochs", "1"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    net = load_feature_net(tmp_path / "f")
    assert net.features(torch.zeros(2, 3, 128, 128, dtype=torch.uint8)).shape == (2, 256)
    card = (tmp_path / "f" / "README.md").read_text()
    assert "huajia train features" in card and "cell_shape" in card
    bad = subprocess.run([sys.executable, "-m", "huajia", "train", "features", "--out", str(tmp_path / "g"),
                          "--images", "5"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "fewer than one batch" in bad.stderr and not (tmp_path / "g").exists()
