package testbed

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Traffic measurement helpers for data-path benchmarks and tests: iperf3
// servers and clients, and ping round-trip samples, all inside named netns.
// Both iperf3 ends are pinned to a CPU each (iperf3 -A), so on a 2-core
// machine the sender and the receiver do not fight over one core; softirq
// work lands where the kernel puts it.

// ServerCPU and ClientCPU are the CPUs the iperf3 ends are pinned to.
const (
	ServerCPU = 0
	ClientCPU = 1
)

// StartIperfServer runs `iperf3 -s` pinned to ServerCPU in netns ns until the
// test ends.
func StartIperfServer(t testing.TB, ns string) { t.Helper(); StartIperfServerPort(t, ns, 5201) }

// StartIperfServerPort is StartIperfServer on another TCP port.
func StartIperfServerPort(t testing.TB, ns string, port int) {
	t.Helper()
	cmd := exec.Command("nsenter", "--net="+NetnsPath(ns), "--", "iperf3", "-s", "-A", strconv.Itoa(ServerCPU), "-p", strconv.Itoa(port))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start iperf3 server in %s: %v", ns, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
}

// Iperf runs an iperf3 TCP client in netns ns against dst (a server started
// with StartIperfServer) for d with the given number of parallel streams and
// returns the receiver's throughput in Gbit/s. The server may still be
// starting: connection refusals are retried for a while.
func Iperf(ns string, dst net.IP, streams int, d time.Duration) (float64, error) {
	return IperfPort(ns, dst, 5201, streams, d)
}

// IperfPort is Iperf against a server on another port.
func IperfPort(ns string, dst net.IP, port, streams int, d time.Duration) (float64, error) {
	args := []string{"iperf3", "-c", dst.String(), "-p", strconv.Itoa(port), "-A", strconv.Itoa(ClientCPU), "-J",
		"-P", strconv.Itoa(streams), "-t", strconv.Itoa(int(d.Seconds())), "-O", "1"}
	var gbps float64
	err := Eventually(20*time.Second, 200*time.Millisecond, func() error {
		out, err := ExecTimeout(d+60*time.Second, ns, args...)
		var res struct {
			Error string `json:"error"`
			End   struct {
				SumReceived struct {
					BitsPerSecond float64 `json:"bits_per_second"`
				} `json:"sum_received"`
			} `json:"end"`
		}
		// iperf3 -J may exit 0 with {"error": "unable to connect ..."}
		// while the server is still starting.
		if jerr := json.Unmarshal([]byte(out), &res); jerr != nil {
			return fmt.Errorf("iperf3 to %s from %s: %v, output: %.300s", dst, ns, errors.Join(err, jerr), out)
		}
		if res.Error != "" || res.End.SumReceived.BitsPerSecond == 0 {
			return fmt.Errorf("iperf3 to %s from %s: %v %q, nothing received", dst, ns, err, res.Error)
		}
		gbps = res.End.SumReceived.BitsPerSecond / 1e9
		return nil
	})
	return gbps, err
}

var pingTime = regexp.MustCompile(`time=([0-9.]+) ms`)

// PingRTTs sends count echo requests from netns ns to dst, interval apart,
// and returns the round-trip times (in ms) of the replies.
func PingRTTs(ns string, dst net.IP, count int, interval time.Duration) ([]float64, error) {
	fam := "-6"
	if dst.To4() != nil {
		fam = "-4"
	}
	secs := fmt.Sprintf("%.3f", interval.Seconds())
	out, err := ExecTimeout(time.Duration(count)*interval+60*time.Second, ns,
		"ping", fam, "-n", "-c", strconv.Itoa(count), "-i", secs, "-W", "1", dst.String())
	var rtts []float64
	for _, m := range pingTime.FindAllStringSubmatch(out, -1) {
		v, perr := strconv.ParseFloat(m[1], 64)
		if perr == nil {
			rtts = append(rtts, v)
		}
	}
	if len(rtts) == 0 {
		return nil, fmt.Errorf("no replies from %s in %s: %v", dst, ns, err)
	}
	return rtts, nil
}

// Median of xs (xs is not modified); 0 for none.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
