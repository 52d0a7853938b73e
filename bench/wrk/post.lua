-- POST a fixed JSON body to the ceiling app: wrk -s post.lua URL -- PATH
init = function(args)
  path = args[1]
  headers = { ["Content-Type"] = "application/json" }
  body = '{"epoch": 1, "values": {"train/box_loss": 1.0123, "metrics/mAP50-95(B)": 0.21}}'
end
request = function()
  return wrk.format("POST", path, headers, body)
end
