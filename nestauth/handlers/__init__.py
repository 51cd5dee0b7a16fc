"""HTTP in, one service call, HTTP out. One module per spec tag."""
