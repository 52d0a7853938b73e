-- GET one path with an API key: wrk -s get.lua URL -- PATH API_KEY
init = function(args)
  path = args[1]
  headers = { ["x-api-key"] = args[2] }
end
request = function()
  return wrk.format("GET", path, headers)
end
