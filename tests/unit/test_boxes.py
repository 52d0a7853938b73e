"""The worker's box arithmetic in numpy (worker/boxes.py): NMS, selection, rescaling."""

import numpy as np

from trainhub.worker.boxes import nms, select, unpad, xywh_to_xyxy


def test_nms_keeps_the_best_of_overlapping_boxes_and_separate_ones() -> None:
    boxes = np.array(
        [[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 10, 10.5]], dtype=np.float32
    )
    scores = np.array([0.5, 0.9, 0.3, 0.1], dtype=np.float32)
    assert nms(boxes, scores, 0.5).tolist() == [1, 2]
    assert nms(boxes, scores, 0.99).tolist() == [1, 0, 2, 3]


def test_select_reads_ultralytics_export_layout() -> None:
    # 4 anchors, 2 classes: rows are x, y, w, h, score of class 0, score of class 1
    output = np.array(
        [
            [10, 11, 40, 50],  # x
            [10, 11, 40, 50],  # y
            [4, 4, 8, 2],  # w
            [4, 4, 8, 2],  # h
            [0.9, 0.8, 0.1, 0.05],  # class 0
            [0.1, 0.85, 0.7, 0.02],  # class 1
        ],
        dtype=np.float32,
    )
    rows = select(output, num_classes=2, conf=0.25, iou=0.5)
    # anchor 1 (class 1, 0.85) overlaps anchor 0 (class 0) but NMS is per class; anchor 3 is low
    assert rows[:, 5].tolist() == [0, 1, 1]
    assert np.allclose(rows[:, 4], [0.9, 0.85, 0.7])
    assert np.allclose(rows[0, :4], [8, 8, 12, 12])
    assert select(output, 2, conf=0.95, iou=0.5).shape == (0, 6)


def test_unpad_maps_the_letterbox_back_to_the_image() -> None:
    # a 200x100 (w x h) image letterboxed into 64x64: gain 0.32, 16 px of padding above and below
    points = np.array([[0, 16, 64, 48], [32, 32, 32, 32], [-5, 0, 70, 64]], dtype=np.float32)
    out = unpad(points, (64, 64), (100, 200))
    assert np.allclose(out[0], [0, 0, 200, 100])
    assert np.allclose(out[1], [100, 50, 100, 50])
    assert np.allclose(out[2], [0, 0, 200, 100])  # clipped to the image


def test_centres_become_corners() -> None:
    assert xywh_to_xyxy(np.array([[10, 20, 4, 6]], dtype=np.float32)).tolist() == [[8, 17, 12, 23]]
