import ArgumentParser
import ChatServer
print("x")
