-- POST /v1/models/{id}: one epoch of 20 metrics per request, as ultralytics encodes it.
-- Every request carries a new epoch (per thread and connection), so each is an insert.
-- wrk -s epoch.lua URL -- MODEL_ID API_KEY
local threads = 0
setup = function(thread)
  thread:set("base", threads * 400000)  -- epochs stay below the protocol's limit of 1,000,000
  threads = threads + 1
end
init = function(args)
  model, key, epoch = args[1], args[2], base
  path = "/v1/models/" .. model
  headers = { ["x-api-key"] = key, ["Content-Type"] = "application/json" }
  values = '{\\"train/box_loss\\": 1.0123, \\"train/seg_loss\\": 2.5, \\"train/cls_loss\\": 1.7, '
    .. '\\"train/dfl_loss\\": 1.2, \\"metrics/precision(B)\\": 0.5, \\"metrics/recall(B)\\": 0.41, '
    .. '\\"metrics/mAP50(B)\\": 0.33, \\"metrics/mAP50-95(B)\\": 0.21, \\"metrics/precision(M)\\": 0.48, '
    .. '\\"metrics/recall(M)\\": 0.4, \\"metrics/mAP50(M)\\": 0.3, \\"metrics/mAP50-95(M)\\": 0.19, '
    .. '\\"val/box_loss\\": 1.1, \\"val/seg_loss\\": 2.6, \\"val/cls_loss\\": 1.8, \\"val/dfl_loss\\": 1.3, '
    .. '\\"model/parameters\\": 2876542, \\"model/GFLOPs\\": 10.4, \\"model/speed_PyTorch(ms)\\": 40.1, '
    .. '\\"model/speed_ONNX(ms)\\": 20.2}'
end
request = function()
  epoch = epoch + 1
  local body = '{"type": "metrics", "metrics": {"' .. epoch .. '": "' .. values .. '"}}'
  return wrk.format("POST", path, headers, body)
end
