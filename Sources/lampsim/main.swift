print("lampsim: not built yet")
