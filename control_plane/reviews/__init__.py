"""好差评 (good/bad reviews): ratings from the pads, bad-review work orders and their deadlines."""
