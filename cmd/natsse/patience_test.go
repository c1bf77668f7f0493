package main_test

import "github.com/natsse/natsse/service/ssetest"

// patience bounds every wait for something natsse must do (ssetest.Patience).
var patience = ssetest.Patience
