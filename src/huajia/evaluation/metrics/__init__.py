"""Distribution metrics of pictures, offline: FID, KID, IS (torchmetrics, over a feature
network: huajia's world features, the FID Inception from a local file, or a local CLIP),
CLIPScore, precision/recall and diversity; reference statistics of the world cached by hash."""

DEFAULT_METRICS = "fid,kid,is,precision-recall,diversity"  # a comma list (``huajia eval``'s default)
