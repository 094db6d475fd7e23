std = "max+ngx_lua"
max_line_length = 120
exclude_files = { "build/", "spec/support/node/" }
files["spec/"] = { std = "+busted" }
