import ControlAPI
print("x")
