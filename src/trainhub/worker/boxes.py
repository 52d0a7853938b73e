"""Box arithmetic in numpy: corners from centres, non-maximum suppression, rescaling.

The same steps as ultralytics' `non_max_suppression` and `scale_boxes`, without torch, so the
ONNX path answers what ultralytics would (tests/exports check it against ultralytics itself).
"""

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float32]
MAX_WH = 7680.0  # class offset that keeps boxes of different classes apart in one NMS pass
MAX_NMS = 30000  # boxes considered by NMS at most
MAX_DET = 300  # boxes answered at most


def xywh_to_xyxy(boxes: Array) -> Array:
    """Return boxes given as centre, width, height as corners x1, y1, x2, y2."""
    out = np.empty_like(boxes)
    half_w, half_h = boxes[:, 2] / 2, boxes[:, 3] / 2
    out[:, 0], out[:, 1] = boxes[:, 0] - half_w, boxes[:, 1] - half_h
    out[:, 2], out[:, 3] = boxes[:, 0] + half_w, boxes[:, 1] + half_h
    return out


def nms(boxes: Array, scores: Array, iou_threshold: float) -> NDArray[np.intp]:
    """Return the indices of the boxes kept by greedy NMS, highest score first."""
    order = np.argsort(-scores, kind="stable")
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep: list[int] = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        x1 = np.maximum(boxes[best, 0], boxes[rest, 0])
        y1 = np.maximum(boxes[best, 1], boxes[rest, 1])
        x2 = np.minimum(boxes[best, 2], boxes[rest, 2])
        y2 = np.minimum(boxes[best, 3], boxes[rest, 3])
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        iou = inter / (areas[best] + areas[rest] - inter + 1e-7)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.intp)


def select(prediction: Array, num_classes: int, conf: float, iou: float) -> Array:
    """Return the kept rows of one image's raw output, as [x1, y1, x2, y2, conf, cls, extra...].

    `prediction` is (4 + num_classes + extra, anchors), ultralytics' export layout; `extra`
    holds mask coefficients or keypoints, carried along.
    """
    rows = prediction.T
    scores = rows[:, 4 : 4 + num_classes]
    best = scores.argmax(1)
    confidence = scores[np.arange(len(rows)), best]
    keep = confidence > conf
    if not keep.any():
        return np.zeros((0, 6 + rows.shape[1] - 4 - num_classes), dtype=np.float32)
    rows, best, confidence = rows[keep], best[keep], confidence[keep]
    order = np.argsort(-confidence, kind="stable")[:MAX_NMS]
    rows, best, confidence = rows[order], best[order], confidence[order]
    corners = xywh_to_xyxy(rows[:, :4])
    kept = nms(corners + (best * MAX_WH)[:, None], confidence, iou)[:MAX_DET]
    extra = rows[kept, 4 + num_classes :]
    return np.concatenate(
        [corners[kept], confidence[kept, None], best[kept, None].astype(np.float32), extra], 1
    ).astype(np.float32)


def unpad(
    points: Array,
    model_shape: tuple[int, int],
    image_shape: tuple[int, int],
    *,
    whole_pixels: bool = True,
) -> Array:
    """Map x, y pairs (columns 0,1 / 2,3 / ...) from the letterboxed input back to the image.

    `model_shape` and `image_shape` are (height, width); points are clipped to the image. Boxes
    take the padding in whole pixels, as the letterbox added it (`scale_boxes`); keypoints take it
    unrounded, as ultralytics' `scale_coords` does.
    """
    gain = min(model_shape[0] / image_shape[0], model_shape[1] / image_shape[1])
    pad_x: float = (model_shape[1] - image_shape[1] * gain) / 2
    pad_y: float = (model_shape[0] - image_shape[0] * gain) / 2
    if whole_pixels:
        pad_x, pad_y = round(pad_x - 0.1), round(pad_y - 0.1)
    out = points.astype(np.float32).copy()
    out[:, 0::2] = np.clip((out[:, 0::2] - pad_x) / gain, 0, image_shape[1])
    out[:, 1::2] = np.clip((out[:, 1::2] - pad_y) / gain, 0, image_shape[0])
    return out
