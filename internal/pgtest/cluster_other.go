//go:build !unix

package pgtest

import (
	"errors"
	"net/url"
)

type cluster struct{ url *url.URL }

func startCluster() (*cluster, error) {
	return nil, errors.New("ephemeral clusters are supported on unix only; set " + EnvURL)
}

func (c *cluster) stop() {}
