-- POST /v1/agent/heartbeat/models/{id} as hub-sdk sends it, never echoing the agentId back
-- (the worst case for the hub: it must recognise the agent by its name).
-- wrk -s beat.lua URL -- MODEL_ID API_KEY
init = function(args)
  path = "/v1/agent/heartbeat/models/" .. args[1]
  headers = { ["x-api-key"] = args[2], ["Content-Type"] = "application/json" }
  body = '{"agent": "python-3.11.7-local", "agentId": null}'
end
request = function()
  return wrk.format("POST", path, headers, body)
end
