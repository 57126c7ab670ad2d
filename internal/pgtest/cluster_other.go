//go:build !unix

package pgtest

import (
	"errors"
	"net/url"
	"os/exec"
)

type cluster struct{ url *url.URL }

func startCluster() (*cluster, error) {
	return nil, errors.New("ephemeral clusters are supported on unix only; set " + EnvURL)
}

func (c *cluster) stop() {}

func asPostgres(*exec.Cmd, string) error {
	return errors.New("helper servers are started on unix only; set " + EnvPgBouncerURL)
}
