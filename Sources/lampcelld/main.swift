print("lampcelld: not built yet")
