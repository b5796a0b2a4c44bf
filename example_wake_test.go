package shellyws_test

import (
	"context"
	"fmt"
	"log"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/shellywstest"
)

// A battery device (a Plus H&T) waking twice. Each wake dials at once,
// sends its full status, stays awake while it is talked to, sends the
// sleep event and closes with 1000. The next wake is scheduled when Wake
// returns, since the period counts from falling asleep, and with
// time.AfterFunc, so that a sleeping device holds no goroutine.
func ExampleComponent_Wake() {
	srv := shellywstest.NewUnstartedServer()
	if err := srv.Start(); err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	server := srv.URL()
	cfg := shellyws.DefaultConfig()
	cfg.Enable, cfg.Server = true, &server

	var dev *shellyws.Component
	dev, err := shellyws.New("shellyplusht-e86beae8ca14",
		shellyws.WithConfigStore(shellyws.NewMemoryStore(cfg)),
		shellyws.WithAwakeIdle(50*time.Millisecond), // a real device: 3 s
		shellyws.WithBootClock(),                    // "ts" counts from boot
		shellyws.WithFullStatus(func(context.Context) (map[string]any, error) {
			var unixtime any // null until the clock is set
			if dev.ClockSet() {
				unixtime = time.Now().Unix()
			}
			return map[string]any{
				"sys": map[string]any{
					"mac":           "E86BEAE8CA14",
					"uptime":        int(dev.SinceBoot().Seconds()),
					"unixtime":      unixtime,
					"wakeup_period": 7200,
					"wakeup_reason": map[string]any{"boot": "deepsleep_wake", "cause": "periodic"},
				},
				"temperature:0": map[string]any{"id": 0, "tC": 22.4},
			}, nil
		}))
	if err != nil {
		log.Fatal(err)
	}

	const period = 20 * time.Millisecond // a real H&T: 7200 s
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	results := make(chan shellyws.WakeResult)
	var wakes atomic.Int32
	var wake func()
	wake = func() {
		res, err := dev.Wake(ctx)
		if err != nil {
			return // ctx ended: the device is switched off
		}
		results <- res
		if wakes.Add(1) < 2 {
			time.AfterFunc(period, wake) // asleep: nothing runs until then
		}
	}
	time.AfterFunc(0, wake)

	wait, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	for range 2 {
		conn, err := srv.Accept(wait)
		if err != nil {
			log.Fatal(err)
		}
		full, err := conn.ExpectFullStatus(wait)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s, ts below a minute: %v, sys: %s\n", full.Method, full.TS < 60, full.Status["sys"])
		ev, err := conn.ExpectEvent(wait)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s %s %s\n", ev.Method, ev.Events[0].Component, ev.Events[0].Event)
		<-conn.Done()
		fmt.Println("closed with", websocket.CloseStatus(conn.Err()))
		res := <-results
		fmt.Println("Wake returned:", res.End, dev.State())
	}
	// Output:
	// NotifyFullStatus, ts below a minute: true, sys: {"mac":"E86BEAE8CA14","unixtime":null,"uptime":0,"wakeup_period":7200,"wakeup_reason":{"boot":"deepsleep_wake","cause":"periodic"}}
	// NotifyEvent sys sleep
	// closed with StatusNormalClosure
	// Wake returned: idle asleep
	// NotifyFullStatus, ts below a minute: true, sys: {"mac":"E86BEAE8CA14","unixtime":null,"uptime":0,"wakeup_period":7200,"wakeup_reason":{"boot":"deepsleep_wake","cause":"periodic"}}
	// NotifyEvent sys sleep
	// closed with StatusNormalClosure
	// Wake returned: idle asleep
}

// A Shelly.Reboot handler for a sleeping device: the wake is held open
// until the reboot fires (Home Assistant asks for 3.5 s, longer than the
// idle time), then ends without a sleep event. The embedder then waits its
// boot time and calls Wake again, which dials at once with the stored
// config.
func ExampleComponent_HoldAwake() {
	srv := shellywstest.NewUnstartedServer()
	if err := srv.Start(); err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	server := srv.URL()
	cfg := shellyws.DefaultConfig()
	cfg.Enable, cfg.Server = true, &server

	mux := shellyws.NewMux()
	dev, err := shellyws.New("shellyplusht-e86beae8ca14",
		shellyws.WithDispatcher(mux),
		shellyws.WithConfigStore(shellyws.NewMemoryStore(cfg)),
		shellyws.WithAwakeIdle(20*time.Millisecond))
	if err != nil {
		log.Fatal(err)
	}
	dev.Register(mux)
	fired := make(chan struct{})
	mux.HandleFunc("Shelly.Reboot", func(_ context.Context, req *shellyws.Request) (any, error) {
		p := struct {
			DelayMS int `json:"delay_ms"`
		}{1000}
		if err := req.Decode(&p); err != nil {
			return nil, err
		}
		release := dev.HoldAwake()
		time.AfterFunc(time.Duration(p.DelayMS)*time.Millisecond, func() {
			defer close(fired)
			dev.InterruptWake() // the reboot: Wake returns WakeInterrupted
			release()
		})
		return nil, nil // answered before anything closes
	})

	results := make(chan shellyws.WakeResult)
	go func() {
		res, _ := dev.Wake(context.Background())
		results <- res
	}()
	wait, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	conn, err := srv.Accept(wait)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := conn.ExpectFullStatus(wait); err != nil {
		log.Fatal(err)
	}
	// Ten times the idle time: only the hold keeps the device awake.
	if err := conn.Call(wait, "Shelly.Reboot", map[string]int{"delay_ms": 200}, nil); err != nil {
		log.Fatal(err)
	}
	res := <-results
	<-conn.Done()
	<-fired
	fmt.Println("Wake returned:", res.End, "sleep event sent:", res.SleepSent)
	fmt.Println("dropped without a close frame:", websocket.CloseStatus(conn.Err()) == -1)
	// Output:
	// Wake returned: interrupted sleep event sent: false
	// dropped without a close frame: true
}
