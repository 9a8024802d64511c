package admin

import "github.com/spf13/cobra"

func (c *cli) ipamCmd() *cobra.Command { return &cobra.Command{Use: "ipam", Hidden: true} }
